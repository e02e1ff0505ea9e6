# In conftest.py
import pytest
import time

class NodeLifecycleManager:
    """Monitor and manage worker node lifecycle."""
    
    def __init__(self):
        self.node_stats = {}
        self.setup_start_time = None
    
    def pytest_xdist_setupnodes(self, config, specs):
        """Called before node setup begins."""
        self.setup_start_time = time.time()
        print(f"Setting up {len(specs)} worker nodes...")
        
        # Pre-setup validation
        for i, spec in enumerate(specs):
            print(f"Worker {i}: {spec}")
    
    def pytest_configure_node(self, node):
        """Configure each worker node."""
        worker_id = node.workerinput['workerid']
        
        # Add custom configuration
        node.config.option.worker_start_time = time.time()
        
        # Track node
        self.node_stats[worker_id] = {
            'configured_at': time.time(),
            'ready_at': None,
            'finished_at': None,
            'tests_executed': 0,
            'errors': []
        }
        
        print(f"Configured worker {worker_id}")
    
    def pytest_testnodeready(self, node):
        """Track when nodes become ready."""
        worker_id = node.workerinput['workerid']
        self.node_stats[worker_id]['ready_at'] = time.time()
        
        setup_duration = time.time() - self.setup_start_time
        print(f"Worker {worker_id} ready after {setup_duration:.2f}s")
    
    def pytest_testnodedown(self, node, error):
        """Handle node shutdown."""
        worker_id = node.workerinput.get('workerid', 'unknown')
        
        if worker_id in self.node_stats:
            self.node_stats[worker_id]['finished_at'] = time.time()
            
            if error:
                self.node_stats[worker_id]['errors'].append(str(error))
                print(f"Worker {worker_id} crashed: {error}")
            else:
                print(f"Worker {worker_id} finished cleanly")
        
        self.print_node_summary(worker_id)
    
    def print_node_summary(self, worker_id):
        """Print summary statistics for a worker."""
        if worker_id not in self.node_stats:
            return
            
        stats = self.node_stats[worker_id]
        if stats['ready_at'] and stats['finished_at']:
            runtime = stats['finished_at'] - stats['ready_at']
            print(f"Worker {worker_id} runtime: {runtime:.2f}s, "
                  f"tests: {stats['tests_executed']}, "
                  f"errors: {len(stats['errors'])}")

def pytest_configure(config):
    if config.pluginmanager.hasplugin("dsession"):
        manager = NodeLifecycleManager()
        config.pluginmanager.register(manager)
