"""The flow decoders ``topfib decode`` uses, each registered in :mod:`.registry` by protocol name."""
