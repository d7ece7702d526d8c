"""What the Keras branches share: the input pipeline and files, the base class, the trainer, the runtime."""
