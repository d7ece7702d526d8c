"""How the process computes, set up in one place: TensorFlow's devices, threads, precision and seed,
the precision an encoder runs in, and TensorFlow's start-up chatter kept off stderr."""
