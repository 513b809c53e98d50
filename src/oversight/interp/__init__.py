"""Look inside: activations, interventions, lens, patching, probes, CCS, neurons, steering."""
