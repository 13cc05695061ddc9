"""Runners: where the loop's roles run. ``runner=local`` (:mod:`~oatlike.runners.local`, this process) and
``runner=ray`` (:mod:`~oatlike.runners.ray`, Ray actors); :func:`oatlike.loop.run` is the same for both."""
