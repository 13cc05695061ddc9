"""Actors: generation engine + explorer + oracle (see :mod:`oatlike.actors.actor`)."""

from oatlike.actors.actor import Actor

__all__ = ["Actor"]
