"""Run one sync in a child process with the hash embedder (for crash and concurrency tests).

usage: python tests/sync_child.py INDEXES_DIR INDEX FOLDER
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fakes import HashEmbedder  # noqa: E402

from ragpipe.errors import RagpipeError  # noqa: E402
from ragpipe.pipeline import Pipeline  # noqa: E402
from ragpipe.settings import load_settings  # noqa: E402


def main() -> int:
    indexes, index, folder = sys.argv[1:4]
    settings = load_settings(overrides={"paths.indexes": Path(indexes)}, environ={})
    pipe = Pipeline(settings, index, embedder=HashEmbedder())
    pipe.checkpoint_files = 200  # the crash tests kill runs before and after a checkpoint
    try:
        stats = pipe.sync(Path(folder))
    except RagpipeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"added={len(stats.added)} deleted={len(stats.deleted)} gen={stats.generation}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
