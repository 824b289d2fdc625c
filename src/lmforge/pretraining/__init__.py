"""Self-supervised pretraining: corpus stores, masking, sentence pairs, packing, objectives."""
