"""plots/: every picture: the lecture's figures, a sweep's curves, TensorBoard's images and the
event-file writer that puts a run's scalars, images and HParams on disk.

May import: the core (mlrefresh.*: losses, units, errors) and runs/records (reading a sweep's
files). The core never imports plots/; runs/jobs opens the event writer.

Example:
    >>> from mlrefresh.plots.figures import draw_lecture  # doctest: +SKIP
    >>> draw_lecture("docs/figures")  # doctest: +SKIP
"""
