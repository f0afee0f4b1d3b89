"""Chat: conversation loading, the chat template with loss masks, chatting with a model."""
