"""QRS.md's JSON examples, verbatim, for tests that check shapes or parse them.

Copied from ``shared/reference/QRS.md``, "License endpoints"; kept here once so every test
reads the same text.
"""

from __future__ import annotations

import json

# Copied from QRS.md, "License endpoints".
OVERVIEW_EXAMPLE = json.loads("""
{"totalTokens":0,"availableTokens":0,"tokensEnabled":false,
 "userAccess":{"enabled":false,"tokenCost":1,"allocatedTokens":0,"usedTokens":0,"quarantinedTokens":0,"schemaPath":"AccessTypeOverview.UserAccessDetails"},
 "loginAccess":{"enabled":false,"tokenCost":0.1,"allocatedTokens":0,"usedTokens":0,"unavailableTokens":0,"schemaPath":"AccessTypeOverview.LoginAccessDetails"},
 "professionalAccess":{"enabled":true,"total":25,"allocated":5,"used":0,"quarantined":0,"excess":0,"available":20,"schemaPath":"AccessTypeOverview.Details"},
 "analyzerAccess":{"enabled":true,"total":25,"allocated":4,"used":0,"quarantined":0,"excess":0,"available":21,"schemaPath":"AccessTypeOverview.Details"},
 "analyzerTimeAccess":{"enabled":true,"allocatedMinutes":700,"usedMinutes":0,"unavailableMinutes":0,"schemaPath":"AccessTypeOverview.AnalyzerTimeAccessDetails"},
 "schemaPath":"AccessTypeOverview"}
""")
ALLOCATION_EXAMPLE = json.loads("""
{"id":"046b6c7f-0b8a-43b9-b35d-6489e6daee91","createdDate":"2026-01-23T04:56:07.000Z",
 "modifiedDate":"2026-01-23T04:56:07.000Z","modifiedByUserName":"INTERNAL\\\\sa_repository",
 "schemaPath":"License.ProfessionalAccessType","privileges":null,
 "user":{"id":"<uuid>","userId":"jdoe","userDirectory":"ACME","userDirectoryConnectorName":"ACME","name":"Jane Doe","privileges":null},
 "lastUsed":"2026-10-01T08:12:44.000Z","excess":false,"quarantined":false,
 "quarantineEnd":"1753-01-01T00:00:00.000Z","deletedUserId":"","deletedUserDirectory":""}
""")
