"""Direct-alignment losses: pure functions (:mod:`~oatlike.losses.dap`) behind one interface
(:mod:`~oatlike.losses.loss`)."""
