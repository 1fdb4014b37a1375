"""Search backends shipped with rumination. Each registers through the
`rumination.search_backends` entry-point group; see rumination.agent.backends."""
