//! wsdrain: WebSocket sessions that survive rolling deployments.
