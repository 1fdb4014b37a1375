"""One research run: the context budget, the loop, the tool executor (browser), sources, the
Researcher, write mode and the search backend registry."""
