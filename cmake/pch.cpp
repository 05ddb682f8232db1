// The precompiled header of every plexus target is built with this empty unit.
