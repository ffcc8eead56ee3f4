"""Learning layer: architectures from a spec, `fit` with telemetry, FLOPs, the playground, sweeps."""
