"""Inside the network: activations, top-activating images, feature visualization, interventions, embeddings."""
