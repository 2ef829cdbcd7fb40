// Upload page: choose or drop a photo, send it to /v1/predict, draw the top brands as bars.
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

function renderPredictions(body) {
  results.replaceChildren();
  body.predictions.forEach((prediction, index) => {
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
    renderPredictions(await response.json());
  } catch (_) {
    showStatus("");
    showError("The service could not be reached. Check your connection and try again.");
  } finally {
    drop.classList.remove("busy");
  }
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
  predict(file);
}

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
