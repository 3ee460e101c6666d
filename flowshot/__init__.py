"""flowshot: a neural one-shot instrument (flow-VAE, nn~ export, MIDI/OSC host)."""

__version__ = "0.1.0"
