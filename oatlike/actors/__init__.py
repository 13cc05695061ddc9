"""Actors: generation engine + explorer + oracle (see :mod:`oatlike.actors.actor`)."""
