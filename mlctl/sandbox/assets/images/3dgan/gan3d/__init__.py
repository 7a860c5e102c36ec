"""The physicists' 3DGAN entry point (`python -m gan3d.train`), as the sandbox's 3dgan image provides it."""
