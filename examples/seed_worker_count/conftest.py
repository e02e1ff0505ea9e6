# In conftest.py
import pytest
import psutil

def pytest_xdist_auto_num_workers(config):
    """Custom worker count based on available resources."""
    
    # Check available memory
    memory_gb = psutil.virtual_memory().total / (1024**3)
    
    # Check if running resource-intensive tests
    if config.getoption("--memory-intensive"):
        # Use fewer workers for memory-heavy tests
        if memory_gb < 8:
            return 2
        elif memory_gb < 16:
            return 4
        else:
            return 8
    
    # Check CPU characteristics
    cpu_count = psutil.cpu_count(logical=False)  # Physical cores only
    
    # Custom logic for different scenarios
    if config.getoption("--io-bound"):
        # I/O bound tests can use more workers
        return cpu_count * 2
    elif config.getoption("--cpu-bound"):
        # CPU bound tests should match core count
        return cpu_count
    
    # Default to letting pytest-xdist decide
    return None


# Added to the seed's example: the options it reads.
def pytest_addoption(parser):
    parser.addoption("--memory-intensive", action="store_true", default=False)
    parser.addoption("--io-bound", action="store_true", default=False)
    parser.addoption("--cpu-bound", action="store_true", default=False)
