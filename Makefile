# The two commands of README's quick start, plus the benchmark and the checks.
.PHONY: run test bench lint man install clean

run: man
	@echo 'logd is in .venv/bin: in another terminal, export PATH="$(CURDIR)/.venv/bin:$$PATH" (then logd --help, man logd)'
	.venv/bin/logd run --config config/agentflow.toml

# the checks first (ruff, mypy: configured in pyproject.toml), then the whole suite, one
# process per core (up to 4; a test file stays in one process)
test:
	@.ci/setup --test
	.venv/bin/ruff check logd tests
	.venv/bin/mypy
	.venv/bin/python -m pytest -q -n auto --maxprocesses=4 --dist loadfile

bench:
	@.ci/setup
	.venv/bin/logd bench

# the man page and completion from the parser (build/, which make install installs); the page also
# into .venv/share/man, where `man logd` finds it once .venv/bin is on PATH
man:
	@.ci/setup
	@.venv/bin/python -m logd.cli.generate build > /dev/null
	@install -D -m 0644 build/man/logd.1 .venv/share/man/man1/logd.1

# as root: logd in its own venv /opt/logd linked as /usr/local/bin/logd (not the system Python:
# PEP 668), users/groups, units, config, man page, completion (systemd/install.sh; DESTDIR stages)
install: man
	systemd/install.sh

# ruff and mypy, configured in pyproject.toml ([tool.ruff], [tool.mypy])
lint:
	@.ci/setup --test
	.venv/bin/ruff check logd tests
	.venv/bin/mypy

clean:
	rm -rf .venv logs .pytest_cache
