# In conftest.py
import pytest
from collections import defaultdict

def pytest_xdist_node_collection_finished(node, ids):
    """Process collected test IDs."""
    worker_id = node.workerinput['workerid']
    
    # Analyze collected tests
    test_counts = defaultdict(int)
    for test_id in ids:
        if '::' in test_id:
            module = test_id.split('::')[0]
            test_counts[module] += 1
    
    print(f"Worker {worker_id} collected {len(ids)} tests:")
    for module, count in sorted(test_counts.items()):
        print(f"  {module}: {count} tests")
    
    # Could implement load balancing adjustments here
    # based on collection results
