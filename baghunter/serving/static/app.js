// Upload page: choose or drop a photo; show its top brands (/v1/predict) or that it shows
// none of them, why (/v1/explain heatmap), its attributes (/v1/attributes) and the
// catalog's look-alikes (/v1/similar); check a listing's claims against it (/v1/audit). Each panel fails on its own: a missing model hides one answer only.
// Plain browser JavaScript on purpose: no build step and nothing fetched from a CDN.
"use strict";

const KEY_STORAGE = "baghunter.apiKey";

const el = (id) => document.getElementById(id);
const fileInput = el("file");
const drop = el("drop");
const preview = el("preview");
const results = el("results");
const statusBox = el("status");
const errorBox = el("error");
const meta = el("meta");
const keyForm = el("key-form");

let lastFile = null;
let previewUrl = null;
let heatmapUrl = null;
let knownBrands = null; // the served model's brands, from /v1/model

function apiHeaders() {
  const key = sessionStorage.getItem(KEY_STORAGE);
  return key ? { "X-API-Key": key } : {};
}

function showStatus(text) {
  statusBox.textContent = text;
  statusBox.hidden = !text;
}

function showError(text) {
  errorBox.textContent = text;
  errorBox.hidden = !text;
}

function describeModel(model) {
  return `${model.name} v${model.version} · @${model.alias}`;
}

// The service answers every error as {"error": code, "detail": sentence}; anything else
// (a proxy's HTML page, a dropped connection) gets a generic sentence.
async function errorText(response) {
  try {
    const body = await response.json();
    if (body && body.detail) return body.detail;
  } catch (_) {
    // not JSON: fall through
  }
  return `The server answered ${response.status} ${response.statusText}.`;
}

async function loadModelBadge() {
  const badge = el("model");
  try {
    const response = await fetch("/v1/model", { headers: apiHeaders() });
    if (response.ok) {
      const model = await response.json();
      knownBrands = model.classes;
      badge.textContent = describeModel(model);
      badge.className = "model-badge ready";
    } else if (response.status === 401) {
      badge.textContent = "API key required";
      badge.className = "model-badge";
    } else {
      badge.textContent = "No model loaded yet";
      badge.className = "model-badge waiting";
    }
  } catch (_) {
    badge.textContent = "Service unreachable";
    badge.className = "model-badge waiting";
  }
}

function renderUnknown(body) {
  // "None of our brands": said plainly, with no bars that would suggest an answer.
  const count = knownBrands ? knownBrands.length : body.predictions.length;
  const item = document.createElement("li");
  item.className = "result unknown";
  const verdict = document.createElement("strong");
  verdict.textContent = `Not one of the ${count} brands this model knows`;
  const detail = document.createElement("span");
  detail.className = "unknown-detail";
  const gate = body.open_set;
  detail.textContent = `Its closest brand, ${body.predictions[0].brand}, is too far from every photo it was trained on (match ${gate.score.toFixed(2)}, needs ${gate.threshold.toFixed(2)}).`;
  item.append(verdict, detail);
  results.append(item);
}

function renderPredictions(body) {
  results.replaceChildren();
  if (body.brand === null && body.open_set) {
    renderUnknown(body);
  } else body.predictions.forEach((prediction, index) => {
    const percent = (prediction.probability * 100).toFixed(1);
    const item = document.createElement("li");
    item.className = index === 0 ? "result top" : "result";

    const label = document.createElement("div");
    label.className = "result-label";
    const brand = document.createElement("span");
    brand.className = "brand";
    brand.textContent = prediction.brand;
    const value = document.createElement("span");
    value.className = "percent";
    value.textContent = `${percent}%`;
    label.append(brand, value);

    const track = document.createElement("div");
    track.className = "track";
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.style.width = `${Math.max(prediction.probability * 100, 0.5)}%`;
    bar.setAttribute("role", "meter");
    bar.setAttribute("aria-valuemin", "0");
    bar.setAttribute("aria-valuemax", "100");
    bar.setAttribute("aria-valuenow", percent);
    bar.setAttribute("aria-label", prediction.brand);
    track.append(bar);

    item.append(label, track);
    results.append(item);
  });
  const badge = el("model");
  badge.textContent = describeModel(body.model);
  badge.className = "model-badge ready";
  meta.textContent = `Model ${describeModel(body.model)} · answered in ${Math.round(body.latency_ms)} ms`;
  meta.hidden = false;
}

async function predict(file) {
  lastFile = file;
  results.replaceChildren();
  meta.hidden = true;
  showError("");
  showStatus("Analysing the photo…");
  drop.classList.add("busy");
  const form = new FormData();
  form.append("file", file, file.name);
  try {
    const response = await fetch("/v1/predict", {
      method: "POST",
      body: form,
      headers: apiHeaders(),
    });
    if (response.status === 401) {
      keyForm.hidden = false;
      showStatus("");
      showError(await errorText(response));
      return;
    }
    if (!response.ok) {
      showStatus("");
      showError(await errorText(response));
      return;
    }
    showStatus("");
    const body = await response.json();
    renderPredictions(body);
    if (body.brand !== null) loadExplanation(file);
  } catch (_) {
    showStatus("");
    showError("The service could not be reached. Check your connection and try again.");
  } finally {
    drop.classList.remove("busy");
  }
}

// Why this brand: the /v1/explain heatmap, shown beside the photo.
async function loadExplanation(file) {
  const box = el("explain-box");
  const caption = el("heatmap-caption");
  const form = new FormData();
  form.append("file", file, file.name);
  try {
    const response = await fetch("/v1/explain", { method: "POST", body: form, headers: apiHeaders() });
    if (file !== lastFile) return;
    if (!response.ok) {
      box.hidden = true;
      return;
    }
    const brand = decodeURIComponent(response.headers.get("X-Explained-Brand") || "");
    if (heatmapUrl) URL.revokeObjectURL(heatmapUrl);
    heatmapUrl = URL.createObjectURL(await response.blob());
    if (file !== lastFile) return;
    el("heatmap").src = heatmapUrl;
    caption.textContent = `Why ${brand}: the brighter an area, the more the answer rests on it`;
    box.hidden = false;
  } catch (_) {
    box.hidden = true;
  }
}

// POST the photo (plus any text fields) to an endpoint; {ok, body} or {ok: false, text}.
async function postPhoto(path, file, fields = {}) {
  const form = new FormData();
  form.append("file", file, file.name);
  for (const [name, value] of Object.entries(fields)) form.append(name, value);
  try {
    const response = await fetch(path, { method: "POST", body: form, headers: apiHeaders() });
    if (response.ok) return { ok: true, body: await response.json() };
    return { ok: false, status: response.status, text: await errorText(response) };
  } catch (_) {
    return { ok: false, status: 0, text: "The service could not be reached." };
  }
}

function percentText(probability) {
  return `${(probability * 100).toFixed(1)}%`;
}

async function loadAttributes(file) {
  const list = el("attributes");
  const status = el("attributes-status");
  list.replaceChildren();
  status.textContent = "Reading the attributes…";
  const answer = await postPhoto("/v1/attributes?k=1", file);
  if (file !== lastFile) return; // a newer photo was chosen meanwhile
  if (!answer.ok) {
    status.textContent = answer.text;
    return;
  }
  status.textContent = "";
  for (const [name, values] of Object.entries(answer.body.attributes)) {
    const term = document.createElement("dt");
    term.textContent = name;
    const value = document.createElement("dd");
    value.textContent = values[0].value;
    const percent = document.createElement("dd");
    percent.className = "attr-percent";
    percent.textContent = percentText(values[0].probability);
    list.append(term, value, percent);
  }
}

async function loadSimilar(file) {
  const grid = el("similar");
  const status = el("similar-status");
  grid.replaceChildren();
  status.textContent = "Searching the catalog…";
  const answer = await postPhoto("/v1/similar?k=8", file);
  if (file !== lastFile) return;
  if (!answer.ok) {
    status.textContent = answer.text;
    return;
  }
  const body = answer.body;
  status.textContent = `${body.matches.length} closest of ${body.index_size} catalog photos`;
  for (const match of body.matches) {
    const item = document.createElement("li");
    const image = document.createElement("img");
    image.src = match.thumbnail_url;
    image.alt = match.title || `${match.brand || "Product"} ${match.source_id}`;
    image.loading = "lazy";
    const caption = document.createElement("div");
    caption.className = "caption";
    const title = document.createElement("strong");
    title.textContent = match.brand || "Unknown brand";
    const detail = document.createElement("span");
    detail.textContent = match.title || match.source_id;
    const score = document.createElement("div");
    score.className = "score";
    score.textContent = `similarity ${match.score.toFixed(3)}`;
    caption.append(title, detail, score);
    item.append(image, caption);
    grid.append(item);
  }
}

// The listing check asks for exactly the fields the served attribute model reads
// (GET /v1/attributes); each suggests the values the model knows.
let auditFieldsVersion = null;

async function loadAuditFields() {
  const box = el("audit-fields");
  let details = null;
  try {
    const response = await fetch("/v1/attributes", { headers: apiHeaders() });
    if (response.ok) details = await response.json();
  } catch (_) {
    details = null;
  }
  const version = details ? `${details.name}@${details.version}` : null;
  if (version === auditFieldsVersion && box.childElementCount) return;
  auditFieldsVersion = version;
  box.replaceChildren();
  if (!details) return; // brand only: no attribute model is served
  for (const [name, values] of Object.entries(details.attributes)) {
    const label = document.createElement("label");
    const input = document.createElement("input");
    input.name = name;
    input.autocomplete = "off";
    const list = document.createElement("datalist");
    list.id = `audit-values-${name}`;
    for (const value of values) {
      const option = document.createElement("option");
      option.value = value;
      list.append(option);
    }
    input.setAttribute("list", list.id);
    if (values.length) input.placeholder = `e.g. ${values[0]}`;
    label.append(`${name.charAt(0).toUpperCase()}${name.slice(1)} `, input, list);
    box.append(label);
  }
}

async function checkListing(event) {
  event.preventDefault();
  const box = el("audit-result");
  box.replaceChildren();
  const note = (text, className = "note") => {
    const line = document.createElement("p");
    line.className = className;
    line.textContent = text;
    box.append(line);
  };
  if (!lastFile) {
    note("Choose a photo first.");
    return;
  }
  const fields = {};
  for (const input of el("audit-form").querySelectorAll("input")) {
    if (input.value.trim()) fields[input.name] = input.value.trim();
  }
  const answer = await postPhoto("/v1/audit", lastFile, fields);
  if (!answer.ok) {
    note(answer.text);
    return;
  }
  const body = answer.body;
  if (body.consistent) {
    note(`The photo agrees with the listing (${body.scored.length} field(s) checked).`, "verdict ok");
  } else {
    note(`${body.findings.length} field(s) disagree with the photo`, "verdict mismatch");
    const list = document.createElement("ul");
    for (const finding of body.findings) {
      const item = document.createElement("li");
      item.className = "finding";
      item.textContent = `${finding.field}: listing says “${finding.claimed}”, the photo looks like “${finding.predicted}” (${percentText(finding.confidence)})`;
      list.append(item);
    }
    box.append(list);
  }
  if (body.unscorable.length) note(`Values no model knows: ${body.unscorable.join(", ")}`);
  if (body.unchecked.length) note(`Not checked (no model for): ${body.unchecked.join(", ")}`);
}

function choose(file) {
  if (!file) return;
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  previewUrl = URL.createObjectURL(file);
  preview.src = previewUrl;
  preview.hidden = false;
  drop.classList.add("has-image");
  const name = el("file-name");
  name.textContent = `${file.name} · ${(file.size / 1024).toFixed(0)} KB · click or drop another photo to replace it`;
  name.hidden = false;
  el("audit-result").replaceChildren();
  el("explain-box").hidden = true;
  predict(file);
  loadAttributes(file);
  loadSimilar(file);
  loadAuditFields(); // the attribute model may have been swapped since the page loaded
}

loadAuditFields();

el("audit-form").addEventListener("submit", checkListing);

fileInput.addEventListener("change", () => choose(fileInput.files[0]));

for (const type of ["dragenter", "dragover"]) {
  drop.addEventListener(type, (event) => {
    event.preventDefault();
    drop.classList.add("dragging");
  });
}
for (const type of ["dragleave", "drop"]) {
  drop.addEventListener(type, (event) => {
    event.preventDefault();
    drop.classList.remove("dragging");
  });
}
drop.addEventListener("drop", (event) => choose(event.dataTransfer.files[0]));

keyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY_STORAGE, el("api-key").value.trim());
  keyForm.hidden = true;
  loadModelBadge();
  if (lastFile) predict(lastFile);
});

loadModelBadge();
