"""Everything that makes the pipeline faster or smaller without being the method (idrift.pipeline):
the acceleration plans (`plan`: a path's label and its techniques), idrift's fast paths (`fast`, with
`fp8`, `epilogues`, `modulation`, `cuda_graphs`), the stock-compile peer (`techniques`), the step cache
(`step_cache`), memory modes (`memory`) and the roofline (`roofline`). Importing the package loads no torch."""
