"""Small helpers: config discovery, Hydra glue, atomic checkpoint IO."""
