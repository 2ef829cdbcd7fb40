"""Attribute prediction: article type, colour, gender... from one product photo.

One module per stage: :mod:`.schema` (which attributes a catalog offers), :mod:`.dataset`
(a versioned, leak-free dataset from the store), :mod:`.heads` (the multi-output Keras head
on the shared embeddings, with a masked loss), :mod:`.report` (per-attribute metrics against
a majority baseline), :mod:`.pipeline` (the MLflow run: train, evaluate, register, promote),
:mod:`.model` (loading a registered model for serving and the audit) and :mod:`.csv_eval`
(scoring any ``styles.csv``-shaped catalog).
"""
