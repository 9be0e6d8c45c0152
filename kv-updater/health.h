/*
 * health: kv-updater's HTTP face on common/httpd: /healthz, /readyz,
 * /metrics (Prometheus text) and a JSON 404 for anything else.
 */
#ifndef KVU_HEALTH_H
#define KVU_HEALTH_H

#include "httpd.h"

/* Routes for sc_httpd_new(); pass the kvu_t as its data (borrowed for the
 * life of the server). */
extern const sc_httpd_route_t kvu_health_routes[];
extern const size_t kvu_health_nroutes;

#endif
