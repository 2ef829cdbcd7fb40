"""One typed settings object for every stage (CLI, Airflow tasks, serving, tests).

Values come from the environment (prefix ``BAGHUNTER_``) or a ``.env`` file, then from the
choices the data home remembers (``<home>/settings.json``: the weights, embedding space and
training recipe the demo or the user picked), then from the defaults below. So a DAG run,
the service and the CLI on one home agree without each being told again.

Directories are created by the stage that writes into them, so importing this module (for
example while Airflow parses a DAG file) has no side effects; only :func:`remember` writes
the home's choices, when a user or the demo asks it to.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, IPvAnyNetwork, TypeAdapter, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from baghunter.attributes.schema import DEFAULT_ATTRIBUTES
from baghunter.catalog.specs import SourceSpec
from baghunter.engines import EngineSetting
from baghunter.storage import Location, join
from baghunter.storage import root as storage_root

StoreBackend = Literal["auto", "embedded", "mongo"]
# Where `baghunter up` serves the MLflow UI of the home's own store unless told otherwise.
LOCAL_MLFLOW_PORT = 5000


class Settings(BaseSettings):
    """Bag Hunter configuration; every field maps to ``BAGHUNTER_<FIELD>``."""

    model_config = SettingsConfigDict(
        env_prefix="BAGHUNTER_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # --- data home -------------------------------------------------------------------
    home: Path = Field(
        default=Path(".baghunter"),
        description="Data home: embedded store, images, raw pages and local MLflow.",
    )

    images_uri: str | None = Field(
        default=None,
        description="Where the content-addressed photos live: a folder, or any fsspec URL "
        "such as s3://bucket/prefix (credentials and AWS_ENDPOINT_URL from the AWS_* "
        "variables). Default: <home>/images.",
    )

    raw_uri: str | None = Field(
        default=None,
        description="Where raw catalog pages are kept, as BAGHUNTER_IMAGES_URI (a folder or "
        "an fsspec URL). Default: <home>/raw.",
    )

    features_uri: str | None = Field(
        default=None,
        description="Where vector spaces (shards and the embedder that made them) and "
        "similar-product indexes live, as BAGHUNTER_IMAGES_URI. Default: <home>/features.",
    )

    # --- catalog store ---------------------------------------------------------------
    store: StoreBackend = Field(
        default="auto",
        description="'embedded' (SQLite in the data home), 'mongo', or 'auto': MongoDB when a "
        "URI or Airflow connection is configured, embedded otherwise.",
    )
    mongo_uri: str | None = Field(default=None, description="mongodb:// URI of the catalog.")
    mongo_db: str = Field(default="baghunter", description="Database used when the URI names none.")
    mongo_conn_id: str = Field(
        default="mongo_default", description="Airflow connection used by tasks for MongoDB."
    )

    # --- catalog sources -------------------------------------------------------------
    sources: list[SourceSpec] = Field(
        default_factory=list,
        description="Catalogs read by scheduled ingest runs, as JSON: "
        '[{"kind": "shopify", "location": "https://shop.example.com", "incremental": true}]',
    )
    http_timeout_s: float = Field(default=30.0, gt=0)
    max_page_bytes: int = Field(
        default=32 * 1024 * 1024, gt=0, description="A catalog page larger than this is refused."
    )
    http_retries: int = Field(default=4, ge=0, description="Retries on 429/5xx/timeouts.")
    http_backoff_s: float = Field(default=0.5, ge=0, description="First backoff; doubles.")
    http_max_backoff_s: float = Field(default=60.0, ge=0, description="Cap, Retry-After included.")
    user_agent: str = "BagHunter/0.1 (+catalog ingestion)"
    fetch_allow_networks: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description="Feeds and their images are fetched from public addresses only; these "
        'networks are allowed too, as JSON CIDRs, e.g. ["127.0.0.1/32"] for a catalog on '
        'this machine or ["10.20.0.0/16"] for one on the premises.',
    )

    # --- images ----------------------------------------------------------------------
    download_concurrency: int = Field(default=16, ge=1, le=256)
    download_timeout_s: float = Field(default=20.0, gt=0)
    max_image_bytes: int = Field(default=20 * 1024 * 1024, gt=0)
    max_image_pixels: int = Field(
        default=40_000_000, gt=0, description="Larger images are refused as decompression bombs."
    )
    min_image_side: int = Field(default=16, ge=1)
    download_max_attempts: int = Field(
        default=3, ge=1, description="Runs that may retry an image whose failure was transient."
    )
    phash_max_distance: int = Field(
        default=24, ge=0, le=128, description="Hamming distance (of 256 bits) for near-duplicates."
    )

    # --- training / registry (used by later stages) ----------------------------------
    mlflow_tracking_uri: str | None = Field(
        default=None, description="Defaults to a SQLite store under the data home."
    )
    mlflow_ui_url: str | None = Field(
        default=None,
        description="MLflow UI address for links from Airflow (default: the tracking server, "
        "else the UI `baghunter up` serves for the home's own store).",
    )
    model_name: str = "bag-brand-classifier"
    weights: str = Field(
        default="imagenet", description="'imagenet', 'none', or a local .weights.h5 file."
    )
    train_defaults: dict[str, Any] = Field(
        default_factory=dict,
        description="Brand training options used when a run names none, as JSON, e.g. "
        '{"backbone": "scratch", "image_size": 32} (the demo remembers its own).',
    )

    # --- where training runs (Airflow workers) ------------------------------------------
    train_queue: str = Field(
        default="default",
        description="Celery queue of the DAGs' train tasks, e.g. 'gpu' for the GPU workers.",
    )
    train_pool: str = Field(default="default_pool", description="Airflow pool of the train tasks.")
    train_gpus: int = Field(
        default=0,
        ge=0,
        description="GPUs a train task's pod asks for under the KubernetesExecutor "
        "(nvidia.com/gpu); 0 adds no pod override.",
    )
    train_node_selector: dict[str, str] = Field(
        default_factory=dict,
        description="Node labels a train task's pod must match under the KubernetesExecutor, "
        'as JSON, e.g. {"cloud.google.com/gke-accelerator": "nvidia-l4"}.',
    )

    # --- visual features, attributes, audit, similar search ----------------------------
    embed_backbone: str = Field(
        default="vgg16", description="Backbone whose pooled features every stage shares."
    )
    embed_image_size: int = Field(
        default=64, ge=32, le=512, description="Square input size of the embedding backbone."
    )
    embed_batch_size: int = Field(default=64, ge=1, le=1024)
    embed_ray_address: str | None = Field(
        default=None,
        description="Compute the embedding stage (baghunter embed, the image_features task) "
        "on Ray Data: a cluster's address (ray://head:10001, auto) or 'local' (a Ray "
        "started for the run). Empty: in this process.",
    )
    embed_engine: Literal["keras", "onnx", "onnx-int8"] = Field(
        default="keras",
        description="What computes the shared vectors. Each engine is its own vector space "
        "(changing it embeds the catalog again); onnx-int8 is several times faster on CPUs.",
    )
    attribute_model_name: str = "product-attributes"
    attributes: list[str] = Field(
        default_factory=lambda: list(DEFAULT_ATTRIBUTES),
        description="Attributes attribute training learns when a run names none, as JSON "
        "(the demo remembers the sample catalog's).",
    )
    attribute_min_count: int = Field(
        default=20, ge=1, description="Photos an attribute value needs when a run names none."
    )
    audit_min_confidence: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description="A finding needs the model this sure of its own answer...",
    )
    audit_max_claimed_probability: float = Field(
        default=0.05,
        ge=0,
        lt=1,
        description="...and at most this probability for what the listing claims.",
    )
    similar_exact_max: int = Field(
        default=50_000,
        ge=0,
        description="Catalogs up to this many vectors are searched exactly; larger ones "
        "use an approximate (HNSW) index when faiss is installed (bench/similar_bench.py: "
        "exact search costs ~0.5 ms per 1,000 vectors a query on 2 cores).",
    )
    similar_center: bool = Field(
        default=False,
        description="Subtract the catalog's mean vector before cosine similarity (helps "
        "features that all point one way, such as an untrained CNN's; not VGG16's).",
    )
    dup_min_cosine: float = Field(
        default=0.992,
        gt=0,
        le=1,
        description="Embedding cosine that makes two photos copies (false-match rate 1e-5 "
        "on real catalog photos with VGG16 64 px features)...",
    )
    dup_max_phash_guard: int = Field(
        default=256,
        ge=0,
        le=256,
        description="...when their pHashes also differ by at most this (256: no guard).",
    )
    dup_neighbours: int = Field(
        default=3, ge=1, le=100, description="Nearest images checked per image for copies."
    )
    dup_mutual: bool = Field(
        default=True, description="Embedding links only between mutual nearest neighbours."
    )

    # --- serving ---------------------------------------------------------------------
    serve_host: str = "127.0.0.1"
    serve_port: int = Field(default=8000, ge=1, le=65535)
    model_alias: str = Field(default="champion", description="Registry alias that is served.")
    serving_engine: EngineSetting = Field(
        default="auto",
        description="What runs the served models: keras, onnx (fp32), onnx-int8, or auto "
        "(the fastest export that passed its agreement check at registration, else Keras).",
    )
    poll_interval_s: float = Field(
        default=30.0, gt=0, description="How often serving checks the registry for a new champion."
    )
    api_key: str | None = Field(
        default=None, description="When set, /v1/* requires it in the X-API-Key header."
    )
    max_upload_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    serve_max_image_side: int = Field(
        default=1024,
        ge=64,
        description="Uploads are kept at most this many pixels a side once decoded (every "
        "model reads far smaller inputs; a 40-megapixel PNG would hold 120 MB per request).",
    )
    serve_max_image_pixels: int = Field(
        default=40_000_000, gt=0, description="Larger uploads are refused (413)."
    )
    serve_batch_max_pixels: int = Field(
        default=120_000_000,
        gt=0,
        description="Pixels one batch request may bring, all its photos together (413).",
    )
    serve_decode_pixels: int = Field(
        default=80_000_000,
        gt=0,
        description="Pixels a replica decodes at once, all requests together; more waits.",
    )
    batch_max_size: int = Field(default=16, ge=1, description="Micro-batch size limit.")
    batch_max_wait_ms: float = Field(
        default=5.0, ge=0, description="How long a request waits for others to batch with."
    )
    top_k: int = Field(default=5, ge=1)

    @field_validator("home", mode="after")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @model_validator(mode="after")
    def _remembered(self) -> Settings:
        """Fill what no source set from the choices this data home remembers."""
        for name, value in read_remembered(self.home).items():
            if name not in self.model_fields_set:
                object.__setattr__(self, name, _adapter(name).validate_python(value))
        return self

    # Derived locations: one place decides the layout of the data home.
    @property
    def remembered_path(self) -> Path:
        return self.home / REMEMBERED_FILE

    @property
    def store_path(self) -> Path:
        return self.home / "catalog.sqlite"

    @property
    def images_dir(self) -> Path:
        return self.home / "images"

    @property
    def images_root(self) -> Location:
        """The photo store: ``images_uri`` (a folder or a URL), else ``images_dir``."""
        return storage_root(self.images_uri, self.images_dir)

    def image_location(self, relpath: str) -> str:
        """Where the stored photo ``relpath`` (``ab/cd/<sha256>.<ext>``) is read from."""
        location = join(self.images_root, relpath)
        return location if isinstance(location, str) else str(location.resolve())

    @property
    def raw_dir(self) -> Path:
        return self.home / "raw"

    @property
    def raw_root(self) -> Location:
        """Where raw catalog pages go: ``raw_uri`` (a folder or a URL), else ``raw_dir``."""
        return storage_root(self.raw_uri, self.raw_dir)

    @property
    def features_dir(self) -> Path:
        return self.home / "features"

    @property
    def features_root(self) -> Location:
        """Vector spaces and similar indexes: ``features_uri`` (a folder or a URL), else
        ``features_dir``."""
        return storage_root(self.features_uri, self.features_dir)

    @property
    def mlflow_dir(self) -> Path:
        return self.home / "mlflow"

    @property
    def tracking_uri(self) -> str:
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{(self.mlflow_dir / 'mlflow.db').resolve()}"

    @property
    def mlflow_ui(self) -> str:
        """Where a browser opens this home's runs.

        A run's link is stored when the run ends, so it names where the UI will be rather
        than asking whether it is up now: the configured UI, the tracking server itself, or
        the UI the local stack serves for a store on this machine.
        """
        if self.mlflow_ui_url:
            return self.mlflow_ui_url.rstrip("/")
        if self.tracking_uri.startswith(("http://", "https://")):
            return self.tracking_uri.rstrip("/")
        return f"http://127.0.0.1:{LOCAL_MLFLOW_PORT}"

    def redacted(self) -> dict[str, Any]:
        """The settings as JSON-ready values, safe to print or log.

        Secrets are shown only as set or unset, and every URI keeps its scheme, host and
        path but loses its ``user:password@`` (a database URI, a tracking server, a
        catalog source behind basic auth).
        """
        payload = _mask_uris(self.model_dump(mode="json"))
        for name in SECRET_SETTINGS:
            if payload.get(name) is not None:
                payload[name] = MASK
        payload["tracking_uri"] = mask_uri(self.tracking_uri)
        return dict(payload)


# What a data home may remember (see read_remembered): choices that decide which model a
# home's runs build and read. Never secrets: the file is plain text in the data home.
REMEMBERED = (
    "weights",
    "embed_backbone",
    "embed_image_size",
    "embed_engine",
    "train_defaults",
    "attributes",
    "attribute_min_count",
    "sources",
    "fetch_allow_networks",  # the demo's catalog is on this machine, on purpose
)
REMEMBERED_FILE = "settings.json"


def read_remembered(home: Path) -> dict[str, Any]:
    """The remembered choices of ``home`` (none when it has no such file).

    A file that cannot be read or parsed is an error, not silently nothing: runs would
    otherwise quietly use other weights than the ones the user chose.
    """
    path = home.expanduser() / REMEMBERED_FILE
    if not path.is_file():
        return {}
    try:
        choices = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path} is unreadable ({exc}): fix or delete it") from exc
    if not isinstance(choices, dict):
        raise ValueError(f"{path} must hold a JSON object")
    unknown = sorted(set(choices) - set(REMEMBERED))
    if unknown:
        raise ValueError(f"{path}: {unknown} cannot be remembered; only {list(REMEMBERED)}")
    return choices


def _adapter(name: str) -> TypeAdapter[Any]:
    """Validates a value of setting ``name`` as the field itself would."""
    annotation: Any = Settings.model_fields[name].annotation
    return TypeAdapter(annotation)


def given(**options: Any) -> dict[str, Any]:
    """The options a run set. ``None`` or an empty string means "use the default": the
    config built from the rest keeps its own defaults, declared once on its class, so the
    CLI, DAG params and the demo never copy them."""
    return {name: value for name, value in options.items() if value is not None and value != ""}


def remember(home: Path, **choices: Any) -> Path:
    """Store ``choices`` in ``home``'s remembered settings (None forgets one); the file."""
    unknown = sorted(set(choices) - set(REMEMBERED))
    if unknown:
        raise ValueError(f"{unknown} cannot be remembered; only {list(REMEMBERED)}")
    current = read_remembered(home)
    for name, value in choices.items():
        if value is None:
            current.pop(name, None)
            continue
        # Checked before writing: a bad value in the file would break every later run.
        adapter = _adapter(name)
        current[name] = adapter.dump_python(adapter.validate_python(value), mode="json")
    path = home.expanduser() / REMEMBERED_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    temporary.replace(path)  # a reader never sees half a file
    return path


# Settings that are secrets in themselves: never printed, whatever their shape.
SECRET_SETTINGS = ("api_key",)
MASK = "***"
# scheme://user:password@host... or scheme://user@host...: the part before the host.
_CREDENTIALS = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/@\s]*)@")


def mask_uri(value: str) -> str:
    """``value`` with any ``user:password@`` of its URI replaced by ``***@``."""
    return _CREDENTIALS.sub(lambda m: f"{m['scheme']}{MASK}@", value)


def _mask_uris(value: Any) -> Any:
    if isinstance(value, str):
        return mask_uri(value)
    if isinstance(value, dict):
        return {key: _mask_uris(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_mask_uris(item) for item in value]
    return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (tests call ``get_settings.cache_clear()`` after setenv)."""
    return Settings()
