"""Entry point: ``python app.py`` (also what a Hugging Face Space runs)."""

from app.server import main

if __name__ == "__main__":
    main()
