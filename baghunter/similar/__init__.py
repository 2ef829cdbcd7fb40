"""Similar products and near-duplicates, both found in the shared embedding space.

:mod:`~baghunter.similar.index` answers "which catalog products look like this photo"
(exact search for catalogs that fit, HNSW beyond); :mod:`~baghunter.similar.duplicates`
groups copies of the same photo by perceptual hash *and* embedding distance;
:mod:`~baghunter.similar.matching` scores such groups against labelled product groups
the way the Shopee product-matching competition did.
"""
