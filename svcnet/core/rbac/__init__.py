"""Role-based access control, pure: who a request comes from, what it asks, and whether a
role's rules allow it (kube-apiserver's pkg/registry/rbac/validation and
plugin/pkg/auth/authorizer/rbac, learned from and written anew).

- identity.py: the authenticated user (name, groups) and the service-account names;
- attributes.py: a request's attributes from method + path + query (RequestInfoFactory),
  and the 403 message kube-apiserver writes;
- rules.py: matching one rule against attributes, and whether rules cover other rules
  (escalation prevention);
- authorizer.py: the RBAC decision over a policy source (roles and bindings);
- bootstrap.py: upstream's bootstrap roles and bindings, and their reconciliation.
"""
