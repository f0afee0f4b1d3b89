"""Chat: conversation loading (SFT data), the chat template with loss masks, assistant turns."""
