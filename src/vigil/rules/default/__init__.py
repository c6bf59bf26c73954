"""Data package: the default Gene rule files (``*.gen``)."""
