# The two commands of README's quick start, plus the benchmark and the checks.
.PHONY: run test bench lint man install clean

run:
	@.ci/setup
	.venv/bin/logd run --config config/agentflow.toml

# the checks first (ruff, mypy: configured in pyproject.toml), then the whole suite
test:
	@.ci/setup --test
	.venv/bin/ruff check logd tests
	.venv/bin/mypy
	.venv/bin/python -m pytest -q

bench:
	@.ci/setup
	.venv/bin/logd bench

man:
	@.ci/setup --test
	.venv/bin/python -m logd.cli.generate build

# as root: logd on PATH, users/groups, units, config, man page, completion (systemd/install.sh)
install: man
	python3 -m pip install '.[all]'
	LOGD_BIN=$$(command -v logd) systemd/install.sh

# ruff and mypy, configured in pyproject.toml ([tool.ruff], [tool.mypy])
lint:
	@.ci/setup --test
	.venv/bin/ruff check logd tests
	.venv/bin/mypy

clean:
	rm -rf .venv logs .pytest_cache
