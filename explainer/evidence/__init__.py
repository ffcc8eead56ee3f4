"""Evidence layer: faithfulness metrics, controls, statistics over images, dataset-scale evaluation."""
