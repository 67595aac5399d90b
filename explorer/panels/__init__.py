"""One panel per file. A panel takes the :class:`explorer.state.AppState` in its constructor, owns its
widgets and plot items (created once), listens to the state's signals and emits its own signals for
user actions; only :mod:`explorer.main_window` knows every panel."""
