"""The audit of a model's lineage: load the chain of stage manifests behind a model
(:mod:`.chain`: from a working-tree folder, an exported ``hf/`` folder, an MLflow run or a
registered model version), re-check every link (:mod:`.checks`), and answer for one
document (:mod:`.document`)."""
