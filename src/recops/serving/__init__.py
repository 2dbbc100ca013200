"""Serving: the Recommender (one session in, top-k out), the BentoML worker runtime, the
model store, bento build, deployments, the local server and the serving bench."""
