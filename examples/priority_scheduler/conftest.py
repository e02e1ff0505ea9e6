# The seed's "Custom Scheduler Implementation" example (hook-specifications.md), completed
# where it says "Implement other required methods...", with its `--priority-scheduler`
# option. Three changes to the seed's methods, each marked "(completed)": a worker starts a
# test only once it holds the next one, so `schedule` fills each node to two tests; the
# run is not finished before there is a collection; and each test is queued once, not once
# per worker.
import pytest
from xdist.scheduler.protocol import Scheduling
from xdist.workermanage import WorkerController
from typing import Sequence

class PriorityScheduler:
    """Custom scheduler that prioritizes certain tests."""
    
    def __init__(self, config, log):
        self.config = config
        self.log = log
        self._nodes = []
        self._pending_priority = []
        self._pending_normal = []
        self._collection_complete = False
        self._node_pending = {}
    
    @property
    def nodes(self) -> list[WorkerController]:
        return self._nodes
    
    @property
    def collection_is_completed(self) -> bool:
        return self._collection_complete
    
    @property
    def tests_finished(self) -> bool:
        # (completed) Not before there is a collection.
        return self._collection_complete and not (self._pending_priority or self._pending_normal)
    
    @property
    def has_pending(self) -> bool:
        return bool(self._pending_priority or self._pending_normal)
    
    def add_node_collection(self, node: WorkerController, collection: Sequence[str]) -> None:
        # (completed) Every worker sends the same collection: queue it once.
        if self._collection_complete:
            return
        self._collection = list(collection)
        # Separate high-priority tests
        for test_id in collection:
            if "priority" in test_id or "critical" in test_id:
                self._pending_priority.append(test_id)
            else:
                self._pending_normal.append(test_id)
        self._collection_complete = True
    
    def schedule(self) -> None:
        """Schedule priority tests first, then normal tests."""
        for node in self._nodes:
            # (completed) `while`, not `if`: a node takes tests until it holds two.
            while node.is_ready() and self.has_pending:
                # Schedule priority tests first
                if self._pending_priority:
                    test = self._pending_priority.pop(0)
                    node.send_runtest(test)
                elif self._pending_normal:
                    test = self._pending_normal.pop(0) 
                    node.send_runtest(test)
                self._node_pending[node].append(test)
        if self.tests_finished:
            for node in self._nodes:
                node.shutdown()
    
    # Implement other required methods...
    # (completed) The rest of pytest-xdist's `Scheduling` protocol.

    def add_node(self, node: WorkerController) -> None:
        self._nodes.append(node)
        self._node_pending[node] = []

    def mark_test_complete(self, node, item_index, duration=0.0) -> None:
        self._node_pending[node].remove(self._collection[item_index])
        self.schedule()

    def mark_test_pending(self, item: str) -> None:
        self._pending_priority.insert(0, item)
        self.schedule()

    def remove_pending_tests_from_node(self, node, indices) -> None:
        raise NotImplementedError()

    def remove_node(self, node: WorkerController) -> str | None:
        """The test the node was running (a crash), if any; its others are queued again."""
        self._nodes.remove(node)
        running, *rest = self._node_pending.pop(node) or [None]
        self._pending_normal[:0] = rest
        self.schedule()
        return running

def pytest_addoption(parser):
    parser.addoption("--priority-scheduler", action="store_true", default=False,
                     help="run tests with 'priority' or 'critical' in their id first")

def pytest_xdist_make_scheduler(config, log):
    """Use custom priority scheduler if requested."""
    if config.getoption("--priority-scheduler"):
        return PriorityScheduler(config, log)
    return None
