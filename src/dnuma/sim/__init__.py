"""Simulation: workloads, scenarios and event sources driving the model."""
