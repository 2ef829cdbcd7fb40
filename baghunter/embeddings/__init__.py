"""Visual features computed once per image and shared by every stage that needs them.

Attribute training, the listing audit, similar-product search and embedding-based
near-duplicate grouping all start from the same pooled backbone features. They are
computed by one pipeline (:mod:`baghunter.embeddings.pipeline`), keyed by the image's
sha256 and the exact backbone that produced them, and only for images not embedded yet.
"""
