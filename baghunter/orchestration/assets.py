"""The assets the DAGs hand on to each other, declared once.

A DAG that produces one lists it in a task's ``outlets``; a DAG that consumes it is
scheduled on it. Both import it from here, so a renamed URI cannot leave a consumer
waiting on an asset nobody updates any more.
"""

from __future__ import annotations

from airflow.sdk import Asset

CATALOG = Asset("baghunter://catalog")  # listings and photos ingested
FEATURES = Asset("baghunter://features")  # shared embeddings of the catalog's photos
BRAND_MODEL = Asset("baghunter://models/brand-classifier")  # a brand champion decided
ATTRIBUTE_MODEL = Asset("baghunter://models/product-attributes")  # an attribute champion
AUDITS = Asset("baghunter://audits")  # listing audit findings written
