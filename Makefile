# The two commands of README's quick start, plus the benchmark.
.PHONY: run test bench clean

run:
	@.ci/setup
	.venv/bin/logd run --config config/agentflow.toml

test:
	@.ci/setup --test
	.venv/bin/python -m pytest -q

bench:
	@.ci/setup
	.venv/bin/logd bench

clean:
	rm -rf .venv logs .pytest_cache
