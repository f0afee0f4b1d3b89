"""What a released model folder carries beside the weights: the model card
(:mod:`.card`)."""
