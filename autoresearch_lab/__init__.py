"""A thin alias of arl for backends written for autoresearch-lab: `from autoresearch_lab.harness.backend import
EvalBackend, EvalResult, SampleResult` keeps working unchanged. Nothing else of autoresearch-lab is provided."""
