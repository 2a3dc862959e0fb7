# The two commands of README's quick start, plus the benchmark and the checks.
.PHONY: run test bench lint clean

run:
	@.ci/setup
	.venv/bin/logd run --config config/agentflow.toml

test:
	@.ci/setup --test
	.venv/bin/python -m pytest -q

bench:
	@.ci/setup
	.venv/bin/logd bench

# ruff and mypy, configured in pyproject.toml ([tool.ruff], [tool.mypy])
lint:
	@.ci/setup --test
	@.venv/bin/python -m pip install -q -e '.[lint]'
	.venv/bin/ruff check logd tests
	.venv/bin/mypy

clean:
	rm -rf .venv logs .pytest_cache
