"""Programs that svcnet's image catalogue (svcnet.runtime.images) runs for built-in images."""
