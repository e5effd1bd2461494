import sys

from bench import run_suites

if __name__ == "__main__":
    args = sys.argv[1:]
    suites = [arg for arg in args if not arg.startswith("-")]
    sys.exit(run_suites(suites, [arg for arg in args if arg.startswith("-")]))
