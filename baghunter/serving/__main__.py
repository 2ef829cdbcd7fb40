"""``python -m baghunter.serving``: run the brand service with the environment's settings."""

import logging

from baghunter.serving.app import serve


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    serve()


if __name__ == "__main__":
    main()
