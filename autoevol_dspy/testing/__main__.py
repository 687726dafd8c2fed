"""``python -m autoevol_dspy.testing``: run the stub server until stdin closes (see :mod:`.stub_server`)."""

from autoevol_dspy.testing.stub_server import main

if __name__ == "__main__":
    main()
