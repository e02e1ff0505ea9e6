# At the rootdir: puts this directory on sys.path so `import covpkg` works.
