"""The GPT model: plain nn.Module, its LightningModule, generation and export."""
