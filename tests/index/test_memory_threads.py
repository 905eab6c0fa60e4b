import threading

import pytest

from index import MemoryConfig

THREADS = 4
ADDS_PER_THREAD = 200


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_concurrent_adds_and_searches_lose_nothing(kind, open_memory, unit_vectors):
    # flush_every is small so that index files are also written while threads race.
    memory = open_memory(MemoryConfig(index_kind=kind, flush_every=150), dim=32)
    vectors = unit_vectors(THREADS * ADDS_PER_THREAD, dim=32)
    added: dict[int, int] = {}  # edit id -> row of `vectors`
    failures: list[BaseException] = []
    adding_done = threading.Event()

    def add_rows(first_row: int) -> None:
        try:
            for row in range(first_row, first_row + ADDS_PER_THREAD):
                added[memory.add(f"prompt {row}", f"target {row}", vectors[row], {"row": row})] = row
        except BaseException as error:
            failures.append(error)

    def search_until_done() -> None:
        try:
            while not adding_done.is_set():
                for hits in memory.search(vectors[:8], k=3):
                    assert all(hit.prompt == f"prompt {hit.metadata['row']}" for hit in hits)
        except BaseException as error:
            failures.append(error)

    adders = [threading.Thread(target=add_rows, args=(n * ADDS_PER_THREAD,)) for n in range(THREADS)]
    searchers = [threading.Thread(target=search_until_done) for _ in range(2)]
    for thread in adders + searchers:
        thread.start()
    for thread in adders:
        thread.join()
    adding_done.set()
    for thread in searchers:
        thread.join()

    assert failures == []
    assert memory.count() == len(added) == THREADS * ADDS_PER_THREAD
    for edit_id, row in added.items():
        assert memory.get(edit_id).prompt == f"prompt {row}"
    found = [hits[0].id for hits in memory.search(vectors[list(added.values())], k=1)]
    assert found == list(added)
