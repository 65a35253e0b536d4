from odoo import api, models, tools


class EyrieCachedSettingsMixin(models.AbstractModel):
    """Settings that every job reads and that seldom change (a cluster, a
    scope): their stored values kept in Odoo's process cache (``ormcache``)
    from one transaction to the next, so that a job finds them in memory
    rather than reading them again after each commit. A change of one
    clears Odoo's cache, on every Odoo server (as for Odoo's own cached
    data: access rules, views, ...), and again once it is committed, so
    that no thread keeps what it read before."""

    _name = "eyrie.cached.settings.mixin"
    _description = "Eyrie settings cached between transactions"

    @api.model_create_multi
    def create(self, vals_list):
        records = super().create(vals_list)
        self._forget_cached_settings()
        return records

    def write(self, vals):
        result = super().write(vals)
        self._forget_cached_settings()
        return result

    def unlink(self):
        result = super().unlink()
        self._forget_cached_settings()
        return result

    def _forget_cached_settings(self):
        self.env.registry.clear_cache()
        self.env.cr.postcommit.add(self.env.registry.clear_cache)

    def _load_cached_settings(self):
        """Put the stored values of these records in the transaction's cache,
        from the process cache; the ones this transaction holds already
        (read, or written and not committed) stay as they are."""
        cache = self.env.cache
        fields_ = self._fields
        for record in self:
            for name, value in self._cached_settings(record.id):
                cache.insert_missing(record, fields_[name], (value,))

    @api.model
    @tools.ormcache("record_id")
    def _cached_settings(self, record_id):
        """((field name, value as Odoo caches it), ...) of record
        ``record_id``: its plain stored fields (not computed, not
        translated, not per company, not JSON), read as superuser. The settings are
        read by the jobs of every user; what each job shows of them is its
        own to check."""
        names = [
            name
            for name, field in self._fields.items()
            if field.store
            and field.column_type
            and field.prefetch is True
            and not field.compute
            # Shared between transactions: never a mutable value.
            and field.type not in ("json", "properties")
            and not field.translate
            and not field.company_dependent
        ]
        # Read for every user's jobs alike (see above).
        record = self.browse(record_id).sudo()
        record.fetch(names)
        cache = self.env.cache
        return tuple(
            (name, cache.get(record, self._fields[name]))
            for name in names
            if cache.contains(record, self._fields[name])
        )
